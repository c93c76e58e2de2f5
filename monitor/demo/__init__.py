"""`driftd demo`: an embedded broker, simulated drifting traffic and local receivers for the
webhook and Slack. Never imported by the service."""

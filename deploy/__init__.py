"""Deployment artefacts and their offline checks (`python -m deploy.check`)."""

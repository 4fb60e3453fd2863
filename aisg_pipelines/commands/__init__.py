"""CLI commands per governance area; each module adds its commands to `aisg_pipelines.cli.main`."""

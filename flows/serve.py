"""Serving the scheduled dedup deployment (kept apart from the flow definitions)."""

from __future__ import annotations

from prefect import serve

from flows.dedup import scheduled_dedup_flow
from flows.settings import ServeSettings


def build_deployment(config: ServeSettings):
    """The cron deployment of the scheduled dedup flow for ``config``."""
    return scheduled_dedup_flow.to_deployment(
        name=config.name,
        cron=config.cron,
        parameters={"config": config.model_dump(mode="json")},
        description=f"Dedup {config.catalog} into {config.output_root} on '{config.cron}'",
        tags=["catalog-match"],
    )


def serve_schedule(config: ServeSettings, run_now: bool = False) -> None:
    """Register the deployment and execute its runs until interrupted; optionally trigger one now."""
    deployment = build_deployment(config)
    if run_now:
        from prefect.deployments import run_deployment

        deployment_id = deployment.apply()
        run_deployment(deployment_id, timeout=0)
    serve(deployment)

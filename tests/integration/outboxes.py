"""Each service's migrated outbox table, by service name."""

from __future__ import annotations

from sqlalchemy import Table


def service_outbox(service: str) -> Table:
    if service == "quota":
        from services.quota.tables import outbox as quota_outbox

        return quota_outbox
    from services.reporting.tables import outbox as reporting_outbox

    return reporting_outbox

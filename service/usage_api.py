"""What the UsageService's RPCs do, as plain async functions (the servicer is thin).

A tenant's usage is read for the tenants the tenants file names now (`tenant_ids`): a
tenant it does not name is NOT_FOUND, as a typo would otherwise read as a month of zeros.
A list pages over those ids, sorted, by a plain offset token (the list is operators' and
small: one page is one pipelined read); a token is checked against its shape and the
list's length before any read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.domain.quotas import QuotasFor
from core.domain.usage import MONTH_SHAPE, MonthUsage, month_of
from core.errors import FieldViolation, InvalidArgument, NotFound, echo
from core.redis.usage import UsageReader
from core.runtime.clock import Clock
from core.security.tenants import TENANT_ID

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_PAGE_TOKEN_CHARS = 9
"""A token is a tenant offset; tenants files hold far fewer than a billion."""


@dataclass(frozen=True)
class TenantMonth:
    """A tenant's usage in a month, with its budget then (0: none)."""

    usage: MonthUsage
    training_token_budget: int


class UsageApi:
    """Reads each tenant's usage per month, with its budget."""

    def __init__(
        self,
        reader: UsageReader,
        tenant_ids: Callable[[], Sequence[str]],
        quotas_for: QuotasFor,
        clock: Clock,
    ) -> None:
        self._reader = reader
        self._tenant_ids = tenant_ids
        self._quotas_for = quotas_for
        self._clock = clock

    async def get(self, tenant: str, month: str) -> TenantMonth:
        """One tenant's usage in `month` ("YYYY-MM"; empty: the current UTC month)."""
        month = self._month(month)
        _check_tenant(tenant)
        if tenant not in self._tenant_ids():
            raise NotFound(f"tenant {echo(tenant)} not found in the tenants file")
        return self._with_budget(await self._reader.month(tenant, month))

    async def list_usage(
        self, month: str, *, page_size: int, page_token: str
    ) -> tuple[list[TenantMonth], str]:
        """A page of every tenant's usage in `month`, by tenant id, and the next token."""
        month = self._month(month)
        size = _page_size(page_size)
        tenants = sorted(self._tenant_ids())
        start = _offset(page_token, len(tenants))
        page = tenants[start : start + size]
        found = await self._reader.months(page, month) if page else []
        end = start + len(page)
        return [self._with_budget(u) for u in found], str(end) if end < len(tenants) else ""

    def _month(self, month: str) -> str:
        if not month:
            return month_of(self._clock())
        if len(month) != len("YYYY-MM") or not MONTH_SHAPE.fullmatch(month):
            raise _invalid("month", f"{echo(month)} is not a month: use YYYY-MM, e.g. 2026-01")
        return month

    def _with_budget(self, usage: MonthUsage) -> TenantMonth:
        budget = int(self._quotas_for(usage.tenant).training_token_budget)
        return TenantMonth(usage, budget)


def _check_tenant(tenant: str) -> None:
    if not tenant:
        raise _invalid("tenant", "required")
    if not TENANT_ID.fullmatch(tenant):
        raise _invalid("tenant", f"{echo(tenant)} must match {TENANT_ID.pattern}")


def _page_size(requested: int) -> int:
    if not 0 <= requested <= MAX_PAGE_SIZE:
        raise _invalid("page_size", f"{requested}: from 1 to {MAX_PAGE_SIZE}, or 0 for 100")
    return requested or DEFAULT_PAGE_SIZE


def _offset(token: str, count: int) -> int:
    if not token:
        return 0
    if len(token) > MAX_PAGE_TOKEN_CHARS or not token.isdecimal() or int(token) >= count:
        raise _invalid("page_token", f"{echo(token)} is not a token this list gave")
    return int(token)


def _invalid(field: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"invalid {field}: {why}", [FieldViolation(field, why)])

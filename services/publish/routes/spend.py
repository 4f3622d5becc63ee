"""What the X account spent (X bills per use): ``GET /v1/spend`` (JSON) and the
admin page ``GET /admin/spend`` ("this month's X spend"), both behind
``PUBLISH_API_KEY`` (the page takes it as the HTTP Basic password)."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from services.common.http import ApiError
from services.publish.deps import Runtime, require_api_key
from services.publish.spend import SpendLedger, SpendReport

router = APIRouter(dependencies=[Depends(require_api_key)])


def _ledger(runtime: Runtime) -> SpendLedger:
    if runtime.spend is None:
        raise ApiError(404, "this publisher keeps no X spend ledger")
    return runtime.spend


@router.get("/v1/spend", response_model=SpendReport, summary="This month's X spend")
async def spend(runtime: Runtime) -> SpendReport:
    return await _ledger(runtime).report()


_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


@router.get("/admin/spend", response_class=HTMLResponse, include_in_schema=False)
async def spend_page(runtime: Runtime) -> HTMLResponse:
    report = await _ledger(runtime).report()

    def budget(value: float | None) -> str:
        return f"${value:,.2f}" if value is not None else "none"

    rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{t.calls:,}</td><td>${t.usd:,.3f}</td></tr>"
        for name, t in sorted(report.month_by_class.items())
    )
    state = (
        f'<p class="paused" role="alert">Publishing on X is paused until '
        f"{escape(report.paused_until.isoformat())}: {escape(report.pause_reason or '')}</p>"
        if report.paused_until
        else "<p>Publishing on X is not paused.</p>"
    )
    html = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>X spend {escape(report.month)}</title>
<style>body{{font:16px system-ui;margin:2em}}td,th{{padding:.2em 1em;text-align:right}}
.paused{{color:#a00;font-weight:bold}}</style></head><body>
<h1>This month's X spend: ${report.month_usd:,.2f}</h1>
<p>Account <b>{escape(report.account)}</b> · {escape(report.month)} (UTC) · today
${report.today_usd:,.2f} · daily budget {budget(report.daily_budget_usd)} · monthly budget
{budget(report.monthly_budget_usd)}</p>
{state}
<table><thead><tr><th>call class</th><th>calls</th><th>cost</th></tr></thead>
<tbody>{rows or '<tr><td colspan="3">nothing yet this month</td></tr>'}</tbody></table>
</body></html>"""
    return HTMLResponse(html, headers=_PAGE_HEADERS)

"""Cal.com API v2 client. The only package that speaks HTTP to Cal.com or knows its JSON."""

from appt_tools.calcom._budget import BudgetLedger, Grant
from appt_tools.calcom.client import API_VERSIONS, CalcomClient

__all__ = ["API_VERSIONS", "BudgetLedger", "CalcomClient", "Grant"]

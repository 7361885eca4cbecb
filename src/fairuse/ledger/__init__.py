"""The pure core's usage ledger: rules 1-7 of the Fair Usage Policy as a fold over events.

One module per rule: ``sessions`` (1), ``weights`` (2), ``calendar`` (3), ``metrics`` (4),
``thresholds`` and ``notices`` (5), ``escalation`` (6), ``statements`` (7); ``dedup``, ``state``
(the typed tenant entry), ``keyed`` (state kept one key per item), ``summary``, ``view`` and
``engine`` (the fold wiring them). See ``docs/ledger-rules.md``.
"""

from fairuse.ledger.engine import Ledger
from fairuse.ledger.escalation import throttled_until
from fairuse.ledger.state import TenantState
from fairuse.ledger.view import usage_view

__all__ = ["Ledger", "TenantState", "throttled_until", "usage_view"]

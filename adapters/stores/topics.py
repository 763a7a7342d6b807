"""The topics of the ledger's stored events (eventsourcing's `module:Class` convention).

Their own module, importing nothing: the codec writes and reads them, and the
rebuild's in-database moment load names them in SQL, which must not load the
event classes (the query path reaches that module and starts faster without them).
"""

from __future__ import annotations

from typing import Final

RECORDED: Final = "mot.domain.events:MomentRecorded"
AMENDED: Final = "mot.domain.events:MomentAmended"
RETRACTED: Final = "mot.domain.events:MomentRetracted"
LINKED: Final = "mot.domain.events:CustomersLinked"
UNLINKED: Final = "mot.domain.events:CustomersUnlinked"
ERASED: Final = "mot.domain.events:PersonErased"

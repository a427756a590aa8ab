"""Attachments by reference: a durable content store and the claim check that uses it.

Typical use (``bridge.app`` builds these from the ``attachments`` config section)::

    store = DirStore("/var/lib/popbridge/attachments")      # or S3Store(bucket=..., ...)
    claim = ClaimCheck(store, store_above=10 * 1024 * 1024)
    payload = await claim.store_large(payload)             # large ones by reference up front
    reference = claim.reference_body(payload)              # what a 413 falls back to
"""

from bridge.attachments.claimcheck import REFERENCE_REASON, ClaimCheck
from bridge.attachments.dirstore import DirStore
from bridge.attachments.s3store import S3Store, s3_available
from bridge.attachments.store import AttachmentStore, OnWrite, PruneResult, parse_duration

__all__ = [
    "REFERENCE_REASON",
    "AttachmentStore",
    "ClaimCheck",
    "DirStore",
    "OnWrite",
    "PruneResult",
    "S3Store",
    "parse_duration",
    "s3_available",
]

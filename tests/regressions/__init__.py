"""Reproductions from a break-it review of the safety work (issue 11), kept as regressions:
each failed before its fix (a RETR failure taken for a refusal, partial acknowledgements not
checked, a reconcile proof that timed out, TOP -ERR, leftovers after an early stop, a backoff
counting webhook attempts, "~" in UIDLs)."""

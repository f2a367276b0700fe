"""Character Card V1/V2/V3 (JSON, PNG, CHARX) and lorebooks: pure functions, no I/O."""

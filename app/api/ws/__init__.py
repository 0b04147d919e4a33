"""`GET /ws`: one socket for every answer, cancel, tool decision and sync push."""

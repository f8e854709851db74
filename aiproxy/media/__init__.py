"""Remote media: fetching http(s) image URLs with SSRF checks (network I/O, kept apart from the pure translators)."""

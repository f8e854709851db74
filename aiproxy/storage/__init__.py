"""What the ledger and the key store share about their databases: URLs and schema migrations."""

"""`dlrun sweep`: the Hydra side of the search (parsing the space, launching trials, the ledger, the report)."""

"""Scene-graph model, vocabularies and extractors (rules offline, LLM through openai)."""

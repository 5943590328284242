"""QA generation: question templates, answer programs, balancing, splits."""

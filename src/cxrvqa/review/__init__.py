"""Human review: reproducible samples of current items for reviewers (JSONL, a self-contained HTML page,
Label Studio tasks, Argilla records), their verdicts imported as `review_verdicts` rows that cap grades
(validator `human_review`), and the accuracy the reviews measure (overall, per template, and how well the
checks caught what the reviewers found)."""

"""Every side effect of iter: prompts, model calls, reviews, execution, git, hooks."""

"""DayDreaming: LLM idea-generation experiments on Dagster."""

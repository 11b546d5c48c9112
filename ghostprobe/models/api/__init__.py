"""Commercial API models as zero-shot baselines: OpenAI (GPT-4o, `kind: openai`) and Gemini (`kind: gemini`)."""

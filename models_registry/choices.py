from django.db import models


class ProviderKind(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    GOOGLE = "google", "Google"
    MISTRAL = "mistral", "Mistral"
    DEEPSEEK = "deepseek", "DeepSeek"
    XAI = "xai", "xAI"
    TOGETHER = "together", "Together AI"
    GROQ = "groq", "Groq"
    FIREWORKS = "fireworks", "Fireworks AI"
    COHERE = "cohere", "Cohere"
    OTHER = "other", "Other"


class ProviderStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    DEGRADED = "degraded", "Degraded"
    DISABLED = "disabled", "Disabled"


class Tokenizer(models.TextChoices):
    """How tokens are counted: exactly with a tiktoken encoding, or approximated per model family."""

    O200K_BASE = "o200k_base", "o200k_base (exact)"
    CL100K_BASE = "cl100k_base", "cl100k_base (exact)"
    CLAUDE = "claude", "Claude (approximated)"
    GEMINI = "gemini", "Gemini (approximated)"
    LLAMA = "llama", "Llama (approximated)"
    MISTRAL = "mistral", "Mistral (approximated)"
    DEEPSEEK = "deepseek", "DeepSeek (approximated)"
    QWEN = "qwen", "Qwen (approximated)"
    GROK = "grok", "Grok (approximated)"
    COHERE = "cohere", "Cohere (approximated)"


class TaskType(models.TextChoices):
    """The task types a model is scored on (0-100) and requests are classified into."""

    CHAT = "chat", "Chat"
    CODE = "code", "Code"
    MATH = "math", "Math"
    REASONING = "reasoning", "Reasoning"
    SUMMARIZATION = "summarization", "Summarization"
    EXTRACTION = "extraction", "Extraction"
    TRANSLATION = "translation", "Translation"
    CREATIVE = "creative", "Creative writing"


class PriceSource(models.TextChoices):
    """Where a price change came from, for the price history."""

    CATALOG = "catalog", "Catalog import"
    LITELLM = "litellm", "LiteLLM price file"
    ADMIN = "admin", "Django admin"
    API = "api", "Models API"
    WEBHOOK = "webhook", "Model-cost-update webhook"

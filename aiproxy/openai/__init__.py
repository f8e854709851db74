"""The client-facing OpenAI API surface: request models, the OpenAPI document, history clean-up."""

"""Request and response models at the HTTP boundary: core (search, documents, collections,
health), faq, openai, similarity and sparse."""

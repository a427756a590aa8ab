"""Message generators for the MIME tests: adversarial inputs, known answers, hypothesis."""

"""The ESPF webhook: authentication schemes, validation and the answers ESPF expects."""

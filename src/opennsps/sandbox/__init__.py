"""A stand-in for PortaBilling (JSON API, ESPF API) and for an HSS, for tests and demos."""

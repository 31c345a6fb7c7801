"""PortaBilling: the JSON API client, the ESPF API client and the raw → pb_data mapping."""

"""The pipeline: claim due deliveries, enrich, dispatch, record outcomes, report statuses."""

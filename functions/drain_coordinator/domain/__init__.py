"""Pure rules of each capability (drains, task stops, webhooks, rescue, schedule). No I/O, no boto3."""

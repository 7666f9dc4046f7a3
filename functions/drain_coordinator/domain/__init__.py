"""Pure drain logic: records, probes, and the decision. No I/O, no boto3."""

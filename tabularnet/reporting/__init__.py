"""What users look at: figures of a run, the end-of-fit summary and the HTML report."""

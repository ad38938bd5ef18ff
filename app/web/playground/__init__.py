"""The playground page of a succeeded job."""

"""What a user looks at after the selection: the console table, figures, the HTML report, the
exported policy, held-out outcomes, and publish.py that writes them all (and hands them to the
dashboard)."""

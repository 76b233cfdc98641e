"""The G1 asset (committed USD) and the tool that rebuilds it."""

"""One module per screen family. Each screen draws a workflows.view.View and sends intents back."""

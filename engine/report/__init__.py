"""What every report shares: Markdown tables and links, CSV tables, figures."""

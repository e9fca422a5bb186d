"""What people read: charts (``plots``) and Markdown tables (``markdown``), free of any framework."""

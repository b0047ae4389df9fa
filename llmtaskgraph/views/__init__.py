"""What people look at: graph drawings and task cards, the notebook editor widget, the HTML report."""

"""Monitoring of scored dates: drift (``drift``, ``profiles``), the checks and the table (``checks``), the report."""

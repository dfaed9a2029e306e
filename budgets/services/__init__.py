"""Write operations of the budgets app. Import the use case you need from its module."""

"""Services: the logic behind the routes, testable without HTTP."""

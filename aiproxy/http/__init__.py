"""The HTTP edge: middlewares for request ids, the error boundary and body hardening."""

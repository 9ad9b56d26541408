"""HTTP: the endpoints, the fast lane in front of Starlette, CORS, the OpenAPI document."""

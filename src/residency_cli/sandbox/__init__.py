"""The local AWS stand-in (CONTRACT.md section 5). Heavy modules here import moto lazily."""

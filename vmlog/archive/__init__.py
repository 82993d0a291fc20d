"""Project archives (``.vmlarchive``): one verifiable file that freezes a whole project for years."""

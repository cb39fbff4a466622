"""The Habitat task family of the teacher: mediator (predicate vector <-> text), option logic, oracle."""

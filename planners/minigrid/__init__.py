"""The MiniGrid task family of the teacher: mediator (observation <-> text), skills, scripted plan sources."""

"""The use cases (find slots, book, reschedule, cancel, search, update) behind every surface, one concern a
module; `service.AppointmentService` wires them together. Imports calcom/, store/, speech/ and the domain
leaves, never a surface. See docs/architecture.md."""

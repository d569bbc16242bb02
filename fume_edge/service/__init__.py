"""Running fume-edge as a service: systemd notification and watchdog, Jetson facts, and the unit/udev templates
that `jetson_setup.sh` installs."""

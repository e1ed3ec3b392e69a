# The flakeboot NixOS module (see nixos/README.md). Its boot-time logic lives in the two shell
# scripts beside it, which the hil-tests' NixOS-shaped fixture runs for real.
{ config, lib, pkgs, modulesPath, ... }:

let
  cfg = config.flakeboot;
  settings = pkgs.writeShellScript "flakeboot-settings" (builtins.readFile ./flakeboot-settings.sh);
  report = pkgs.writeShellScript "flakeboot-report" (builtins.readFile ./flakeboot-report.sh);
  logs = pkgs.writeShellScript "flakeboot-logs" (builtins.readFile ./flakeboot-logs.sh);
in
{
  imports = [ (modulesPath + "/installer/netboot/netboot-minimal.nix") ];

  options.flakeboot = {
    settings.enable = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Apply flakeboot.hostname= (and flakeboot.timezone=) from the kernel command line before the network comes up.";
    };
    report.enable = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Report the end of the boot (up, or failed with the failed units) to the flakeboot.server= on the kernel command line.";
    };
    logs.enable = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Send the kernel's console (netconsole, UDP 6666) and the journal (syslog, UDP 514) to the flakeboot.server= on the kernel command line, where they show in the machine's boot.";
    };
  };

  config = {
    # The host name comes from the appliance (flakeboot.hostname=); an empty one keeps NixOS from
    # writing /etc/hostname over it. A host that sets networking.hostName keeps its own.
    networking.hostName = lib.mkDefault "";

    systemd.services.flakeboot-settings = lib.mkIf cfg.settings.enable {
      description = "flakeboot: per-machine settings from the kernel command line";
      wantedBy = [ "sysinit.target" ];
      before = [ "network-pre.target" "sysinit.target" ];
      wants = [ "network-pre.target" ];
      unitConfig.DefaultDependencies = false;
      path = [ pkgs.coreutils ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = "${settings}";
      };
    };

    systemd.services.flakeboot-report = lib.mkIf cfg.report.enable {
      description = "flakeboot: report the boot to the appliance";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      path = [ pkgs.curl pkgs.iproute2 pkgs.coreutils pkgs.gnused pkgs.gawk pkgs.systemd ];
      serviceConfig = {
        # Not oneshot: `flakeboot-report.sh wait` waits for the boot to finish, which would never
        # happen while the boot waits for this service.
        Type = "exec";
        ExecStart = "${report} wait";
      };
    };

    # netconsole is configured at run time (configfs): the appliance's address is known only
    # from the command line at boot, so it cannot be a static netconsole= kernel parameter.
    boot.kernelModules = lib.mkIf cfg.logs.enable [ "netconsole" ];

    systemd.services.flakeboot-netconsole = lib.mkIf cfg.logs.enable {
      description = "flakeboot: the kernel's console to the appliance (netconsole)";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      path = [ pkgs.kmod pkgs.iproute2 pkgs.util-linux pkgs.coreutils pkgs.gnused ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = "${logs} netconsole";
      };
    };

    systemd.services.flakeboot-journal = lib.mkIf cfg.logs.enable {
      description = "flakeboot: the journal to the appliance (syslog)";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      path = [ pkgs.systemd pkgs.util-linux pkgs.coreutils pkgs.gnugrep ];
      serviceConfig = {
        # `journalctl -b -f` piped to `logger --udp --rfc5424`: the whole boot's journal, then
        # each new line; restarted if either end stops.
        ExecStart = "${logs} journal";
        Restart = "always";
        RestartSec = 5;
      };
    };
  };
}

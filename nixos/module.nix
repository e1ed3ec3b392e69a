# The flakeboot NixOS module (see nixos/README.md). Its boot-time logic lives in the two shell
# scripts beside it, which the hil-tests' NixOS-shaped fixture runs for real.
{ config, lib, pkgs, modulesPath, ... }:

let
  cfg = config.flakeboot;
  settings = pkgs.writeShellScript "flakeboot-settings" (builtins.readFile ./flakeboot-settings.sh);
  report = pkgs.writeShellScript "flakeboot-report" (builtins.readFile ./flakeboot-report.sh);
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
  };
}

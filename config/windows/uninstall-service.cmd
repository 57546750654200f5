@echo off
rem mt5-copier: stop and remove a service that install-coordinator-service.cmd or install-worker-service.cmd
rem installed. From an administrator's command prompt:
rem   uninstall-service.cmd mt5-copier
rem   uninstall-service.cmd mt5-copier-broker-a
rem Nothing else is touched: the config, the keys, state_dir and the log files stay where they are.

setlocal
rem ---- edit this -------------------------------------------------------------------------------------------
rem nssm.exe from https://nssm.cc/download (the win64 folder of the zip).
set "NSSM=C:\nssm\win64\nssm.exe"
rem ----------------------------------------------------------------------------------------------------------

set "SERVICE=%~1"
if not defined SERVICE (
    echo usage: %~nx0 SERVICE-NAME
    exit /b 2
)
if not exist "%NSSM%" (
    echo nssm.exe is not at %NSSM%: set NSSM in this file.
    exit /b 1
)
rem A stopped service answers stop with an error: that is fine, the removal below is what counts.
"%NSSM%" stop "%SERVICE%"
"%NSSM%" remove "%SERVICE%" confirm || goto :failed
echo %SERVICE% is removed.
exit /b 0

:failed
echo Removing %SERVICE% failed (above). Is the name right? "sc query state= all" lists the services.
exit /b 1

@echo off
rem mt5-copier: run one mt5-copier command, again after a crash, never after a stop or a configuration
rem error. What the scheduled tasks run (mt5-copier-worker-task.xml, mt5-copier-coordinator-task.xml): the
rem Task Scheduler's own "restart on failure" restarts a task that could not start, never one whose program
rem exited with an error code, so this loop applies the exit-code policy (README, "Running unattended on
rem Windows"; config\exit_codes.py):
rem   0 stopped on purpose (Ctrl-C in this window, a signal): the loop ends.
rem   2 configuration error, or a worker refused for its identity: the loop ends; a restart cannot mend it.
rem   1, 3 and any other code (a crash): started again after RESTART_DELAY seconds.
rem Usage, with the arguments of mt5-copier itself:
rem   run-loop.cmd worker --config C:\mt5-copier\worker.toml
rem   run-loop.cmd run --config C:\mt5-copier\copier.toml

setlocal
rem ---- edit these ------------------------------------------------------------------------------------------
rem The console script pip installed into the virtual environment (pyproject.toml, [project.scripts]).
set "MT5_COPIER=C:\mt5-copier\.venv\Scripts\mt5-copier.exe"
rem One line per exit, with its code and time: the trace of what the loop did while nobody watched.
set "LOOP_LOG=C:\mt5-copier\service-logs\run-loop.log"
set "RESTART_DELAY=10"
rem ----------------------------------------------------------------------------------------------------------

if "%~1"=="" (
    echo usage: %~nx0 worker --config FILE    or    %~nx0 run --config FILE
    exit /b 2
)
if not exist "%MT5_COPIER%" (
    echo mt5-copier.exe is not at %MT5_COPIER%: set MT5_COPIER in this file.
    exit /b 2
)
for %%f in ("%LOOP_LOG%") do if not exist "%%~dpf" mkdir "%%~dpf"

:start
"%MT5_COPIER%" %*
set "CODE=%ERRORLEVEL%"
>>"%LOOP_LOG%" echo %DATE% %TIME% mt5-copier %* exited with code %CODE%
if "%CODE%"=="0" goto :stopped
if "%CODE%"=="2" goto :config_error
echo mt5-copier exited with code %CODE%; starting it again in %RESTART_DELAY% s (Ctrl-C to stop).
rem ping waits without needing a keyboard, which timeout does: N+1 pings are N seconds apart.
set /a "PINGS=RESTART_DELAY+1"
ping -n %PINGS% 127.0.0.1 >nul
goto :start

:stopped
echo mt5-copier stopped (exit code 0).
exit /b 0

:config_error
echo mt5-copier exited with code 2: a configuration error (above, and in its log). Fix it, then start the
echo task again: schtasks /Run /TN "TASK NAME", or log off and on.
exit /b 2
